"""Face and motion models: pure geometry and networks, no file or device I/O."""
