"""One module per subcommand; each calls into the layers and returns an exit code."""
