"""The sample FastAPI code bases of test_migrate.py: input for `covet migrate`, not tests of this suite (they import
fastapi). test_migrate.py copies them (without this file), migrates the copy and runs its own tests."""

collect_ignore_glob = ["*"]
