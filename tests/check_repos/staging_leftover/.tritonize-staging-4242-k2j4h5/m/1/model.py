# half a staged model
