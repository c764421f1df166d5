"""What a reader sees: CSV tables, figures, summaries, the paper's LaTeX and the book's pages, written from
the study's results. Imports the study's API, never the physics."""
