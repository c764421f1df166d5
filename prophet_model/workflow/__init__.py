"""How the artifact runs: the results folder and its manifest, the notebook pipeline, the book folder,
process hygiene and locks, the run log and a private copy of the checkout."""
