"""The ``lilbee-ticker`` command line: ``python -m lilbee_ticker demo`` plays the demo.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from lilbee_ticker import __version__

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lilbee-ticker`` command line and return its exit status.

    A Ctrl-C before a command has its own handling in place (while the
    library is being imported, say) exits with status 130 and no traceback.

    Args:
        argv: The arguments, without the program name; by default
            ``sys.argv[1:]``.

    Raises:
        SystemExit: For ``--help``, ``--version`` and bad arguments (status
            2), as :mod:`argparse` does.

    .. versionadded:: 0.1.0
    """
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 130


def _main(argv: Sequence[str] | None) -> int:
    # Imported here, not at the top, so that the heavy imports it brings
    # (asyncio, structlog, multiprocessing) happen inside main()'s handler.
    from lilbee_ticker.demo import _cli as demo_cli

    parser = argparse.ArgumentParser(
        prog="lilbee-ticker",
        description="A health ticker that keeps a pool of long-lived worker processes honest.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    commands.required = True
    demo_cli.add_parser(commands)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # Told by the command's own parser, so the usage shown is the command's.
        command: argparse.ArgumentParser = args.parser
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
