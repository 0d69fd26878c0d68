// Session users work with engine types (ProgressEvent, JobContext, WhittleError, ModelCost)
// alongside the session ones, so importing WhittleSession brings them in.
@_exported import WhittleEngine
