import sys

from mailbot.cli import main

if __name__ == "__main__":  # not when a helper process (spawn) imports it
    sys.exit(main())
