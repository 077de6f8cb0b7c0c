"""Errors a user can cause. The CLI prints these as one line and exits 2; anything else is a bug."""

import re


class LeannetError(Exception):
    """Base for user-facing errors (bad name, bad shape, bad file, bad config)."""


class UnknownModelError(LeannetError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ShapeError(LeannetError, ValueError):
    pass


class WeightsError(LeannetError):
    """A checkpoint that is missing, corrupt, unsafe or does not fit the model."""


class DownloadError(WeightsError):
    """A download that failed (404, cut short, wrong checksum) or can't happen (offline, nothing cached)."""


class ConfigError(LeannetError, ValueError):
    pass


class DataError(LeannetError):
    pass


class TrainingError(LeannetError):
    """Training cannot continue (e.g. a non-finite loss); the last good checkpoint is kept."""


class UnknownRuntimeError(LeannetError):
    """A benchmark runtime name that leannet does not know."""


class ExportError(LeannetError):
    """An export that failed, or whose artefact does not reproduce the PyTorch model."""


_LOCATION = re.compile(r"^(Exception from |Check '.*' failed at )?\S+\.(cpp|hpp|cc|h|c)(:\d+)*:?$")


def reason(e: BaseException, limit: int = 300) -> str:
    """One line of a third-party exception for a user-facing message: its first line that says
    something. OpenVINO and NNCF open with source locations ("Exception from src/inference/
    src/cpp/core.cpp:99:") and give the reason on a later line."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    said = next((ln for ln in lines if not _LOCATION.match(ln)), lines[0] if lines else type(e).__name__)
    return said[:limit]
