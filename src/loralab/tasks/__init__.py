"""Tasks: each one file owning its loader, prompt, target and answer parser, behind a registry.

scienceqa.py    ScienceQA (CQM-A prompt, "The answer is X." parser)
demo.py         the bundled quiz in ScienceQA's schema
commonsense.py  the eight LLM-Adapters commonsense sets and their mix
reference_forms.py  obqa and boolq in the MoE-LoRA reference's form (task.template=reference)
csqa.py         CommonsenseQA (the MoE-LoRA reference's template, "The correct answer is X." parser)
alpaca.py       the Alpaca template both papers wrap prompts in
sources.py      reading a Hub id, a folder or a file into splits; records.py: exact JSON
registry.py     name -> builder; `register_task` adds a user's own task
text_answers.py task.answer_form=text: answer with the option's text, not its label
"""

from loralab.tasks import commonsense, csqa, demo, reference_forms, scienceqa
from loralab.tasks.base import DataError, Task
from loralab.tasks.registry import (
    BUILT_IN,
    SPLITS,
    TASKS,
    build_task,
    register_task,
    task_config_errors,
)

register_task("demo", demo.build, demo.config_errors)
register_task("scienceqa", scienceqa.build, scienceqa.config_errors, split_sources=True)
for _name in (commonsense.MIX, *commonsense.COMMONSENSE_TASKS):
    register_task(_name, commonsense.build, commonsense.config_errors)
for _name in reference_forms.TASKS:  # LLM-Adapters' form by default, or the reference's
    register_task(_name, reference_forms.build, reference_forms.config_errors)
register_task("csqa", csqa.build, csqa.config_errors)
BUILT_IN.update(TASKS)

__all__ = [
    "SPLITS",
    "TASKS",
    "DataError",
    "Task",
    "build_task",
    "register_task",
    "task_config_errors",
]
