"""Independent checks that return structured reports. They never change content or touch storage."""

from validators.base import Evidence, Report, Validator, ValidationContext

__all__ = ["Evidence", "Report", "Validator", "ValidationContext"]
