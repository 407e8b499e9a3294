"""Entry point for ``python -m spacy_ladtl``."""
from .cli import app

if __name__ == "__main__":
    app()
