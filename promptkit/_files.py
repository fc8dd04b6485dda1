"""Prompt files: a prompt object saved as JSON or YAML, and loaded back.

The file is the prompt's ``model_dump`` plus a ``technique`` key naming its class::

    # classify.yaml
    technique: FewShot
    instruction: Classify the sentiment of the review as positive or negative.
    examples:
      - {input: I loved it, output: positive}
      - {input: It broke after a day, output: negative}

Images, audio and documents in a prompt file (an example's input, a document's media, a
history message's parts) are written as part dicts; a relative ``path`` in one is taken from
the prompt file's folder, not from the current directory, so the file loads the same
wherever Python was started::

    # shapes.yaml
    technique: FewShot
    instruction: Name the shape in the picture.
    template: "{{ photo }}"
    examples:
      - input: {photo: {type: image, path: shapes/square.png}}   # beside shapes.yaml
        output: square

:func:`save_prompt` writes a path relative to the new file's folder when the media lies
inside it (``..`` folded away first), absolute otherwise, and ``~/...`` as written.
``.prompty`` files are read by :mod:`promptkit.prompty` (their markdown images are taken
from the ``.prompty`` file's folder too and must stay inside it); :func:`load_prompt`
dispatches to it. Saving a loaded ``.prompty`` prompt into another folder rewrites its
local image paths relative to the new file; an image outside the new folder raises
:class:`~promptkit.PromptError` (save it where the images are, or copy them), and paths
the template builds from values (``![x]({{ pic }})``) are left as written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._errors import ConfigurationError, PromptError
from ._media import FILE_FORM, media_from_value, paths_from, paths_saved_to
from .prompts import (
    ChainOfThought,
    Context,
    Conversation,
    Delimited,
    FewShot,
    Instruction,
    Negative,
    Perspectives,
    Prompt,
    PromptBase,
    Role,
    ZeroShot,
)

__all__ = ["TECHNIQUES", "load_prompt", "prompt_from_dict", "prompt_to_dict", "save_prompt"]

#: Technique classes by the name used in prompt files.
TECHNIQUES: dict[str, type[Prompt]] = {
    cls.__name__: cls
    for cls in (
        Prompt,
        ZeroShot,
        FewShot,
        ChainOfThought,
        Role,
        Instruction,
        Negative,
        Delimited,
        Perspectives,
        Conversation,
        Context,
    )
}


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is a dependency
        raise ConfigurationError(
            "Reading YAML needs PyYAML: pip install pyyaml (or save the prompt as .json)."
        ) from None
    return yaml


def prompt_to_dict(prompt: Prompt, *, folder: str | Path | None = None) -> dict[str, Any]:
    """The prompt as plain data with its ``technique``; only fields that differ from the
    defaults are kept, so files stay short. With ``folder`` (where the data will be saved),
    media paths are written as a file there must hold them (see the module docs).

    >>> prompt_to_dict(ZeroShot(instruction="Translate to French."))
    {'technique': 'ZeroShot', 'instruction': 'Translate to French.'}
    """
    if folder is not None:
        with paths_saved_to(folder):
            return prompt_to_dict(prompt)
    data = prompt.model_dump(mode="json", exclude_defaults=True, context={FILE_FORM: True})
    if data.get("inputs") is None:
        data.pop("inputs", None)  # its JSON serializer defeats exclude_defaults
    return {"technique": type(prompt).__name__, **data}


def prompt_from_dict(
    data: dict[str, Any], *, where: str = "prompt data", base_dir: str | Path | None = None
) -> Prompt:
    """Build a prompt from :func:`prompt_to_dict`'s form. ``base_dir`` is the folder of the
    file the data was read from: relative media paths in it are taken from there (without
    it, from the current directory).

    >>> prompt_from_dict({"technique": "Role", "role": "a chef"}).render(input="Hi")[0].content
    'You are a chef.'
    """
    if base_dir is not None:
        with paths_from(base_dir, where):
            return prompt_from_dict(data, where=where)
    if not isinstance(data, dict):
        raise PromptError(f"{where}: expected a mapping with a 'technique' key.")
    fields = dict(data)
    name = fields.pop("technique", "Prompt")
    cls = TECHNIQUES.get(str(name))
    if cls is None:
        import difflib

        close = difflib.get_close_matches(str(name), list(TECHNIQUES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise PromptError(
            f"{where}: unknown technique {name!r}.{hint} Known: {', '.join(TECHNIQUES)}."
        )
    examples = fields.get("examples")
    if isinstance(examples, list):
        # an image/audio/file in an example's input is written as a part dict
        fields["examples"] = [_example_media(ex) for ex in examples]
    prompt: Prompt = cls.model_validate(fields)
    return prompt


def _example_media(ex: Any) -> Any:
    if isinstance(ex, dict) and isinstance(ex.get("input"), dict):
        return {**ex, "input": {k: media_from_value(v) for k, v in ex["input"].items()}}
    return ex


def load_prompt(path: str | Path) -> PromptBase:
    """Load a prompt from a ``.json``, ``.yaml``/``.yml`` or ``.prompty`` file."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".prompty":
        from .prompty import load

        return load(p)
    if suffix not in (".json", ".yaml", ".yml"):
        raise PromptError(
            f"{p}: unknown prompt file type {suffix or '(none)'!r}; use .json, .yaml or .prompty."
        )
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PromptError(f"Cannot read prompt file {p}: {exc.strerror}.") from None
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PromptError(f"{p}: invalid JSON on line {exc.lineno}: {exc.msg}.") from None
    else:
        yaml = _yaml()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PromptError(f"{p}: invalid YAML: {exc}.") from None
    return prompt_from_dict(data, where=str(p), base_dir=p.parent)


def save_prompt(prompt: PromptBase, path: str | Path) -> Path:
    """Save a prompt as ``.json``, ``.yaml`` or ``.prompty``; returns the path written."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".prompty":
        from .prompty import save

        save(prompt, p)
        return p
    if not isinstance(prompt, Prompt):
        raise PromptError(
            f"{p}: a {type(prompt).__name__} can be saved as .prompty only; .json and .yaml "
            "hold technique prompts (FewShot, ChainOfThought, ...)."
        )
    data = prompt_to_dict(prompt, folder=p.parent)
    if suffix == ".json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    elif suffix in (".yaml", ".yml"):
        text = _yaml().safe_dump(data, sort_keys=False, allow_unicode=True)
    else:
        raise PromptError(f"{p}: save as .json or .yaml (got {suffix or 'no suffix'!r}).")
    try:
        p.write_text(text, encoding="utf-8")
    except OSError as exc:  # as the .prompty writer says it
        raise PromptError(
            f"Cannot write {p}: {exc.strerror or exc}. Check that the path names a file in "
            "a folder that exists and is writable."
        ) from None
    return p
