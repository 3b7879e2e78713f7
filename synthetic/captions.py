"""Captions for scenes: many templates and paraphrases of one ground truth.

Captions only ever name objects that are in the scene, so a scene built from seen pairs can never
produce a caption that mentions a held-out pair. ``canonical_caption`` is the plain, deterministic
description stored in truth files; ``sample_caption`` draws the varied training captions.
"""

from __future__ import annotations

import numpy as np

from search.embedder.prompts import DEFAULT_TEMPLATES
from synthetic.scene import ObjectSpec, Scene
from synthetic.vocab import colour as colour_of
from synthetic.vocab import shape as shape_of

# The phrasings a query is wrapped in at search time; the bundled model is trained on them too
# and ships them in mmsearch_prompts.json so the embedder's prompt ensembling matches training.
QUERY_TEMPLATES: tuple[str, ...] = DEFAULT_TEMPLATES

_EXTRA_TEMPLATES: tuple[str, ...] = (
    "a picture of {}",
    "{} on a {background} background",
    "an image showing {}",
    "a rendering of {}",
    "a jpeg photo of {}",
    "a blurry photo of {}",
    "a drawing of {}",
    "there is {} in the picture",
    "a simple graphic with {}",
)

_POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("on the left", "on the left side", "to the left"),
    "right": ("on the right", "on the right side", "to the right"),
    "top": ("at the top", "near the top", "at the top of the image"),
    "bottom": ("at the bottom", "near the bottom", "at the bottom of the image"),
    "center": ("in the center", "in the middle", "in the centre"),
}

_BACKGROUND_WORDS: dict[str, tuple[str, ...]] = {
    "plain": ("plain", "flat", "uniform"),
    "stripes": ("striped", "stripy"),
    "noise": ("noisy", "mottled", "blotchy"),
    "gradient": ("gradient", "shaded"),
}

_NUMBER_WORDS = {2: "two", 3: "three"}


def article(phrase: str) -> str:
    """'a' or 'an' for the phrase that follows."""
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def with_article(phrase: str) -> str:
    return f"{article(phrase)} {phrase}"


def object_phrase(obj: ObjectSpec, size: bool = False, position: bool = False) -> str:
    """'large red circle on the left' style phrase with canonical names, no article."""
    words = ([obj.size] if size else []) + [obj.colour, obj.shape]
    phrase = " ".join(words)
    if position:
        phrase += " " + _POSITION_PHRASES[obj.position][0]
    return phrase


def canonical_caption(scene: Scene) -> str:
    """The plain description of a scene: 'a red circle and a blue star'."""
    return _join([with_article(object_phrase(o)) for o in scene.objects])


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _sampled_object_phrase(rng: np.random.Generator, obj: ObjectSpec, synonym_p: float) -> str:
    colour_word = obj.colour
    if rng.random() < synonym_p:
        colour_word = _pick(rng, colour_of(obj.colour).synonyms)
    shape_word = obj.shape
    if rng.random() < synonym_p:
        shape_word = _pick(rng, shape_of(obj.shape).synonyms)
    r = rng.random()
    if r < 0.08:
        core = f"{shape_word} coloured {colour_word}" if rng.random() < 0.5 else f"{colour_word}-colored {shape_word}"
    else:
        core = f"{colour_word} {shape_word}"
    if rng.random() < 0.35:
        core = f"{obj.size} {core}"
    phrase = with_article(core) if rng.random() < 0.8 else core
    if rng.random() < 0.3:
        phrase += " " + _pick(rng, _POSITION_PHRASES[obj.position])
    return phrase


def _partial_phrase(rng: np.random.Generator, obj: ObjectSpec) -> str:
    """Colour-only or shape-only descriptions, so single-attribute queries mean something."""
    if rng.random() < 0.5:
        return _pick(rng, (f"something {obj.colour}", f"a {obj.colour} object", f"a {obj.colour} shape", f"{obj.colour}"))
    return _pick(rng, (with_article(obj.shape), f"a {obj.shape} shape", obj.shape))


def sample_caption(rng: np.random.Generator, scene: Scene, synonym_p: float = 0.12) -> str:
    """One varied caption of ``scene`` (used for training)."""
    objects = list(scene.objects)
    if not objects:
        return f"{_pick(rng, _BACKGROUND_WORDS[scene.background.kind])} background"
    order = rng.permutation(len(objects))
    objects = [objects[int(i)] for i in order]
    r = rng.random()
    if len(objects) == 1 and r < 0.12:
        body = _partial_phrase(rng, objects[0])
    elif len(objects) > 1 and r < 0.12:
        body = _sampled_object_phrase(rng, objects[0], synonym_p)  # naming one of several objects
    else:
        parts = [_sampled_object_phrase(rng, o, synonym_p) for o in objects]
        if len(parts) == 2 and rng.random() < 0.2:
            body = f"{parts[0]} {_pick(rng, ('next to', 'with', 'beside'))} {parts[1]}"
        else:
            body = _join(parts)
            if len(parts) > 1 and rng.random() < 0.15:
                body = f"{_NUMBER_WORDS[len(parts)]} shapes: {body}"
    r = rng.random()
    if r < 0.35:
        return body
    if r < 0.75:
        return _pick(rng, QUERY_TEMPLATES[1:]).format(body)
    template = _pick(rng, _EXTRA_TEMPLATES)
    return template.format(body, background=_pick(rng, _BACKGROUND_WORDS[scene.background.kind]))
