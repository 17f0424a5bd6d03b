"""A program the config tests point a task at; the loader checks it exists, never imports it."""


def scan() -> None:
    """Nothing to do: only the file's existence is checked."""
