"""The hearth-client package's files. Not Python code: the wheel ships this folder as the package `app.js`
(pyproject.toml maps it), so an installed server serves the module (app/sdk.py) from its own files."""
