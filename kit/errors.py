"""Exceptions of the kit: one base class so callers can catch everything the kit raises on purpose."""


class KitError(Exception):
    """Base class for errors the kit raises deliberately."""


class ConfigError(KitError, ValueError):
    """Bad user input (an unknown model, platform, precision, a non-positive batch size...), raised before any work."""


class BackendUnavailable(KitError):
    """A platform is not present on this machine; the sweep turns it into a skipped record."""


class UnsupportedConfiguration(KitError):
    """A platform cannot run a precision or mode; the sweep turns it into a skipped record with this reason."""


class MeasurementError(KitError):
    """A measurement produced values that fail the sanity checks (non-positive, unordered percentiles...)."""


class ConversionError(KitError):
    """A model could not be converted or exported for an engine (OpenVINO, ONNX); the sweep records a failure with the
    converter's message."""
