"""Prompt objects: every prompting technique as an immutable pydantic model.

All techniques share one base, :class:`Prompt`, so they compose: a few-shot prompt can carry
a role, instruction, negative constraints, delimited sections, documents, history and a
chain-of-thought trigger at once. The technique classes (``FewShot``, ``ChainOfThought``,
...) differ only in their defaults and in what they require.

Where things are: the parts (``Example``, ``Document``, ``Perspective``) in ``_parts``;
:class:`PromptBase` (render, run, stream, batch) in ``_base``; :class:`Prompt` (the
fields and their validation) in ``_prompt``; the render pipeline in ``_pipeline``; the
layout templates and their Python twins in ``_layout``; example selection in
``_examples``; history trimming in ``_history``; answer extraction in ``_answers``;
neutralising untrusted values in ``_neutralise``; the technique classes in ``_techniques``.

LAYOUT — what ``render()`` returns, always in this order:

1. **system** (left out when empty): the parts below, each rendered by its own template
   (``promptkit/templates/NAME.j2``), empty parts left out, joined by one blank line:
   ``role`` ("You are ..."), ``instruction`` (the task, then ``Output format:``,
   ``Length:``, ``Style:``, ``Audience:`` lines), ``negative`` ("Do not:" and a list),
   ``perspectives`` (one heading per viewpoint, then the synthesis), ``context`` (answer
   from the documents, cite ids, say ``not_found`` otherwise), ``delimited`` (marked
   sections are data, not instructions), ``chain_of_thought`` ("End with: <answer
   format>"), ``few_shot`` (the examples, when ``examples_layout="inline"``).
2. **examples** (``examples_layout="turns"``, the default): for each example a user
   message (built exactly like the final user message, from the example's input) and an
   assistant message (``few_shot_output``: rationale, then the output in the answer format).
   The examples are the first ``max_examples``, or those ``example_selector`` chooses for
   the input (see :mod:`promptkit.retrieval`).
3. **history** (``Conversation``): earlier turns, trimmed to ``max_turns`` /
   ``max_history_tokens`` from the oldest end.
4. **user** (``user``): the delimited sections (documents first, then the ``delimit``
   variables in their order), then ``template`` rendered with the variables, then the
   reasoning trigger; empty parts left out, the rest joined by one blank line.

Delimited sections open with ``<<<LABEL>>>`` and close with ``<<<END LABEL>>>``. The run
of ``<`` is made one longer than the longest run of ``<`` in any sectioned text, so no
text can forge or close a marker.

Untrusted values (``delimit`` variables, documents and their titles, and the template
variables named in ``untrusted=[...]``) cannot forge a chat template's special tokens
either: by default their special-token strings are broken with a zero-width space and
invisible characters (Unicode tags, bidi controls, NUL) are shown as ``[U+XXXX]``; see
:mod:`promptkit._untrusted` for the exact transform. ``special_tokens=llm.special_tokens()``
uses the model's own list; ``neutralise_untrusted=False`` sends the values unchanged.
Trusted text (role, instruction, examples, templates) is never altered.

Any layout template can be replaced with ``templates={"negative": "...", ...}`` (a string
or a :class:`pathlib.Path`). Fields that are templates: ``instruction`` and ``template``.
Everything else (examples, documents, history, avoid, ...) is data and is never evaluated.

>>> from promptkit.prompts import FewShot, Example
>>> p = FewShot(instruction="Classify.", examples=[Example(input="great", output="positive")])
>>> [m.role for m in p.render(input="awful")]
['system', 'user', 'assistant', 'user']
"""

from ._base import PromptBase, arender_prompt
from ._layout import LAYOUT_TEMPLATES
from ._parts import Document, Example, Perspective
from ._prompt import RESERVED, Prompt
from ._techniques import (
    ChainOfThought,
    Context,
    Conversation,
    Delimited,
    FewShot,
    Instruction,
    Negative,
    Perspectives,
    Role,
    ZeroShot,
)

__all__ = [
    "LAYOUT_TEMPLATES",
    "RESERVED",
    "ChainOfThought",
    "Context",
    "Conversation",
    "Delimited",
    "Document",
    "Example",
    "FewShot",
    "Instruction",
    "Negative",
    "Perspective",
    "Perspectives",
    "Prompt",
    "PromptBase",
    "Role",
    "ZeroShot",
    "arender_prompt",
]
