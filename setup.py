"""Only the build step pyproject.toml cannot express: ship the top-level openapi/ folder (the spec
the service serves and the connector files) inside the `connector` package of a wheel."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithSpec(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads openapi/ from the checkout (connector/spec.py)
        target = Path(self.build_lib) / "connector" / "_openapi"
        self.mkpath(str(target))
        for source in sorted(Path(__file__).resolve().parent.joinpath("openapi").iterdir()):
            if source.is_file():
                self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildWithSpec})
