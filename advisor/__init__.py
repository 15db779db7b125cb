"""mlarch advisor: theory, decisions and the command-line interface."""
__version__ = "0.1.0"
