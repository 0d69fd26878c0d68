print("whittle")
