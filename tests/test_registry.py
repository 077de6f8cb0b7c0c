"""Builders a reader can find: one typed, keyword-only function per registered name, importable
from its family's module; misspelt keywords fail loudly; published facts are named."""

import dataclasses
import importlib
import inspect

import pytest

import leannet
from leannet.errors import ConfigError
from leannet.registry import Published, build, model_info, register

NAMES = leannet.list_models()


@pytest.mark.parametrize("name", NAMES)
def test_builder_importable_by_its_name(name):
    builder = model_info(name).builder
    module = importlib.import_module(builder.__module__)
    assert module.__name__.startswith("leannet.models.")
    # a closure made in a loop would have a `<locals>` qualname and no module attribute
    assert builder.__qualname__ == name
    assert getattr(module, name) is builder
    assert name in module.__all__
    exec(f"from {module.__name__} import {name} as imported", ns := {})
    assert ns["imported"] is builder


@pytest.mark.parametrize("name", NAMES)
def test_builder_signature_is_keyword_only_and_typed(name):
    sig = inspect.signature(model_info(name).builder)
    assert sig.return_annotation is not inspect.Signature.empty
    assert {"num_classes", "in_chans", "drop_rate"} <= set(sig.parameters)
    for p in sig.parameters.values():
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, p
        assert p.annotation is not inspect.Parameter.empty, p


@pytest.mark.parametrize("name", NAMES)
def test_misspelt_builder_keyword_is_a_type_error(name):
    # Python itself refuses it, before any layer is built (so this is cheap for every model).
    builder = model_info(name).builder
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_clases'"):
        builder(num_clases=10)
    with pytest.raises(TypeError, match="positional"):
        builder(10)


def test_create_model_names_the_accepted_keywords():
    with pytest.raises(ConfigError) as err:
        leannet.create_model("pplcnet_x0_25", drop_rat=0.1)
    msg = str(err.value)
    assert "\n" not in msg
    assert "pplcnet_x0_25: unknown argument 'drop_rat'" in msg
    assert "did you mean drop_rate?" in msg
    assert "(it takes num_classes, in_chans, drop_rate, head_bias)" in msg


def test_type_error_inside_a_builder_is_not_blamed_on_the_caller(monkeypatch):
    # The old registry parsed TypeError text, so a bug deep in a builder that raised
    # "unexpected keyword argument" was reported as the user's typo.
    def broken(*, num_classes: int = 1000) -> None:
        raise TypeError("Conv2d.__init__() got an unexpected keyword argument 'kernal'")

    info = dataclasses.replace(model_info("pplcnet_x0_25"), builder=broken)
    monkeypatch.setitem(leannet.registry._MODELS, "pplcnet_x0_25", info)
    with pytest.raises(TypeError, match="kernal") as err:
        build("pplcnet_x0_25", num_classes=3)
    assert not isinstance(err.value, ConfigError)


@pytest.mark.parametrize("bad", [
    lambda **kwargs: None,
    lambda num_classes=1000: None,
    lambda *args, num_classes=1000: None,
])
def test_register_refuses_loose_builders(bad):
    with pytest.raises(TypeError, match="keyword-only"):
        register("not_a_model", family="test", published=Published(source="test"))(bad)
    assert "not_a_model" not in leannet.list_models("not_a_model")


def test_published_is_keyword_only():
    with pytest.raises(TypeError):
        Published("arXiv:2109.15099 Table 2", 3.0, 161)
    facts = Published(source="arXiv:2109.15099 Table 2", params_m=3.0, macs_m=161)
    assert (facts.params_m, facts.macs_m, facts.top1) == (3.0, 161, None)
    assert model_info("pplcnet_x1_0").published.macs_m == 161  # the row of Table 2
