"""The one exception type of the library; the CLI maps it to ``Error: ...`` and its exit code."""

USAGE_EXIT_CODE = 2  # bad input: malformed file, unknown key, impossible numbers
DOES_NOT_FIT_EXIT_CODE = 1  # a valid request whose answer is "it does not fit"


class PlannerError(Exception):
    """A problem with the user's input, stated in one line that names the field and the fix."""

    exit_code = USAGE_EXIT_CODE

    def __init__(self, message: str, exit_code: int = USAGE_EXIT_CODE) -> None:
        super().__init__(message)
        self.exit_code = exit_code
