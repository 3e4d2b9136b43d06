"""Pipeline stages. Stages never import each other (checked by tests/test_layout.py)."""
