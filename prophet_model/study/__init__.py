"""The study: the configuration and catalogs, the scenarios and strategies built from them, the study's
tables (runner), the claims, checks and sensitivity. Imports the physics, never the outputs."""
