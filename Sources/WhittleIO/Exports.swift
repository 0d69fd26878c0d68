@_exported import WhittleEngine
