# Root conftest: nothing but making the repository importable for tests that
# run from a checkout. fakecql's fixtures come from its pytest11 entry point
# (pyproject.toml), exactly as another project's suite would get them.
