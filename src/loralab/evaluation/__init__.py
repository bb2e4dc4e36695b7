"""Accuracy: score mode (option scores from the training forward pass, scoring.py), generate mode
(greedy decoding then the task's parser, generation.py), one split's predictions either way
(predict.py), the generate-accuracy curve during training (generate_accuracy.py) and the
result table (report.py)."""
