"""How the command-line tools report input they cannot use: one line on stderr, exit status 2
(1 stays for any other error, with its traceback).

:data:`INPUT_ERRORS` are the errors about the files a tool was given, raised before it does its
work: a missing file, a checkpoint that is not a readable torch file
(:class:`~mmdcls.models.utils.UnreadableCheckpointError`), an output that is the same file as
an input (:class:`~mmdcls.utils.safe_output.SameFileError`). :data:`SETUP_ERRORS` adds, for the
tools that run a config, a failed config check and a missing toolkit.
"""
import sys

from mmdcls.models.utils.checkpoint import UnreadableCheckpointError
from .config_checks import ConfigCheckError
from .safe_output import SameFileError
from .tool_setup import ToolkitNotInstalledError

__all__ = ['INPUT_ERRORS', 'SETUP_ERRORS', 'report_tool_error']

#: the errors that mean a tool's input files cannot be used as given
INPUT_ERRORS = (FileNotFoundError, UnreadableCheckpointError, SameFileError)
#: the errors that mean a config cannot run as given (checked before anything is built)
SETUP_ERRORS = INPUT_ERRORS + (ConfigCheckError, ToolkitNotInstalledError)


def report_tool_error(tool: str, err: object) -> int:
    """Prints ``<tool>: error: <err>`` (an exception or a message) on stderr; returns the exit
    status, 2."""
    print(f'{tool}: error: {err}', file=sys.stderr)
    return 2
