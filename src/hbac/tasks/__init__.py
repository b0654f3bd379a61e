"""Tasks: the classes, target and prediction columns, metrics and their direction of each problem."""
