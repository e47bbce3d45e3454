"""The ``neurolace`` command: one module per subcommand, no science here."""
