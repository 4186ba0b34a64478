"""Subcommands of the ``nasvit`` CLI; each module has ``add_parser(subparsers)`` and ``run(args)``."""
