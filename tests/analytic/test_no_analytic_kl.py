"""Pairs without a closed form raise jaxkl.NoAnalyticKL with a helpful message."""

import jax.numpy as jnp
import pytest

import jaxkl

# Nothing here is checked against an oracle: these pairs have no closed form.
ORACLE_PAIRS: set = set()


def _mixture():
    return jaxkl.Mixture(jnp.zeros(2), jaxkl.Normal(jnp.array([-1.0, 1.0]), 1.0))


def test_no_analytic_kl_is_not_implemented_error():
    assert issubclass(jaxkl.NoAnalyticKL, NotImplementedError)


@pytest.mark.parametrize(
    "make_a, make_b",
    [
        (_mixture, lambda: jaxkl.Normal(0.0, 1.0)),
        (lambda: jaxkl.Normal(0.0, 1.0), _mixture),
        (_mixture, _mixture),
    ],
)
def test_mixture_kl_raises_with_helpful_message(make_a, make_b):
    a, b = make_a(), make_b()
    with pytest.raises(jaxkl.NoAnalyticKL) as info:
        jaxkl.kl(a, b)
    message = str(info.value)
    ta, tb = type(a).__name__, type(b).__name__
    assert f"KL({ta} ‖ {tb})" in message
    assert "jaxkl.mc_kl" in message
    involved = {type(a), type(b)}
    expected = [
        f"{x.__name__}‖{y.__name__}"
        for x, y, _ in jaxkl.registered_pairs()
        if x in involved or y in involved
    ]
    if jaxkl.Normal in involved:
        assert "Normal‖Normal" in expected
    for pair in expected:
        assert pair in message
    # Also catchable as the standard exception.
    with pytest.raises(NotImplementedError):
        jaxkl.kl(a, b)


def test_register_kl_refuses_to_replace_a_pair_unless_told():
    from jaxkl.analytic import registry

    before = dict(registry._REGISTRY)
    try:
        with pytest.raises(ValueError, match=r"KL\(Normal ‖ Normal\) is already registered"):

            @jaxkl.register_kl(jaxkl.Normal, jaxkl.Normal)
            def _wrong(a, b):
                return 42.0

        assert float(jaxkl.kl(jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 1.0))) == 0.5

        @jaxkl.register_kl(jaxkl.Normal, jaxkl.Normal, override=True)
        def _on_purpose(a, b):
            return 42.0

        assert float(jaxkl.kl(jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 1.0))) == 42.0
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(before)
        registry._dispatch.cache_clear()
