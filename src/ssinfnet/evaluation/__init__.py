"""Evaluation: paper and Inf-Net protocol metrics, ROC, model comparison and the HTML report."""
