"""The errors whose message says all a user needs: a bad config, a campaign that cannot go on, a rejected API key.

The CLI shows such an error as one message (with the program's own last log lines where it has them), never the
stack of our code through Prefect's engine; Prefect's API and UI still receive the whole record. Any other error is
unexpected, and keeps its traceback everywhere."""


class ExpectedError(Exception):
    """An error a user causes and can fix, whose message names the cause and the fix."""
