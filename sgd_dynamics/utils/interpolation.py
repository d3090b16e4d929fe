"""OmegaConf interpolations in a string, read by OmegaConf's own grammar: whether OmegaConf
would resolve a string, and which resolvers that would call.

A string is an interpolation exactly when OmegaConf treats it as one (``${key}``, text around
``${...}``, ``\\${...}`` escapes); its resolvers are the ``${name:...}`` calls anywhere inside,
nested ones included. A resolver name that is itself computed (``${${a}:x}``) is returned as
written, so it matches no accepted name.
"""

from __future__ import annotations

__all__ = ["UnparsableInterpolation", "is_interpolation", "resolvers_in"]


class UnparsableInterpolation(ValueError):
    """A string OmegaConf would try to resolve but whose ``${...}`` its grammar refuses."""


def is_interpolation(text: str) -> bool:
    """Whether OmegaConf resolves `text` when it is a config value (it holds ``${``)."""
    from omegaconf._utils import ValueKind, get_value_kind

    return get_value_kind(text) == ValueKind.INTERPOLATION


def resolvers_in(text: str) -> list[str]:
    """The resolvers `text` calls, in order (``[]`` for plain ``${key}`` interpolations or no
    interpolation at all).

    Raises:
        UnparsableInterpolation: an interpolation OmegaConf's grammar cannot parse.
    """
    if not is_interpolation(text):
        return []
    from omegaconf import grammar_parser
    from omegaconf.errors import GrammarParseError
    from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser

    try:
        tree = grammar_parser.parse(text)
    except GrammarParseError as exc:
        raise UnparsableInterpolation(str(exc).splitlines()[0] if str(exc) else text) from None
    found: list[str] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, OmegaConfGrammarParser.InterpolationResolverContext):
            found.append(node.resolverName().getText())
        stack.extend(reversed(getattr(node, "children", None) or []))
    return found
