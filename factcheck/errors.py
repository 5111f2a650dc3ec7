"""One exception tree. Each message is what the user sees, on one line, at the CLI edge."""


class FactcheckError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code = 1


class InputError(FactcheckError):
    """The article or another input could not be read or is unusable."""


class ConfigError(FactcheckError):
    """Options, environment or model files do not add up to a usable back end."""


class BackendError(FactcheckError):
    """The model server could not be reached or answered with an error."""


class ModelOutputError(FactcheckError):
    """The model kept returning output that does not fit the schema."""

    def __init__(self, message: str, *, last_output: str | None = None, attempts: int = 0):
        super().__init__(message)
        self.last_output = last_output
        self.attempts = attempts


class TruncatedOutputError(ModelOutputError):
    """The model hit max_tokens, so its JSON is cut off."""


class RefusalError(ModelOutputError):
    """The model refused the request."""


class BudgetExceededError(FactcheckError):
    """A token or cost budget would be exceeded."""

    exit_code = 3
