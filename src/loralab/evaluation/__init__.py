"""Accuracy: score mode (option scores from the training forward pass, scoring.py), generate mode
(greedy decoding then the task's parser, generation.py), one split's predictions either way
(predict.py), lm-eval's metrics where options are scored whole (option_metrics.py), the
generate-accuracy curve during training (generate_accuracy.py), the result table (report.py)
and the per-question records (predictions_file.py)."""
