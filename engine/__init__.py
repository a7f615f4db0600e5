"""secretshift: declarative, reviewable migration of secrets between secrets managers."""

__version__ = "0.1.0"
