"""The HTML report: the top layer, reading the folders every stage writes through their read APIs."""
