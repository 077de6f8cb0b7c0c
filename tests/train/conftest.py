import pytest

from tests.train.tiny import make_image_folder


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("tiny"))
