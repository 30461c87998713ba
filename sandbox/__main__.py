"""`python -m sandbox --addr 127.0.0.1:8001`: the sandbox under its own settings.

The same as `DJANGO_SETTINGS_MODULE=sandbox.settings python manage.py run_sandbox ...`;
any other management command can follow instead (`python -m sandbox migrate`).
"""

import os
import sys


def main() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "sandbox.settings"
    from django.core.management import execute_from_command_line

    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        args = ["run_sandbox", *args]
    execute_from_command_line(["python -m sandbox", *args])


if __name__ == "__main__":
    main()
