"""A stand-in for DIRAC's ``executeWithUserProxy``, for the tests of code that acts as a user."""
from DIRAC import S_ERROR


class FakeProxy:
    """Stands in for executeWithUserProxy: records the proxy kwargs, then runs the function
    'under the proxy' (``active``) or fails like a proxy download that did not work."""

    def __init__(self):
        self.calls = []
        self.error = None
        self.active = False

    def __call__(self, function):
        def wrapped(*args, **kwargs):
            proxy = {key: kwargs.pop(key) for key in list(kwargs) if key.startswith("proxy") or key == "executionLock"}
            self.calls.append(proxy)
            if self.error:
                return S_ERROR(self.error)
            self.active = True
            try:
                return function(*args, **kwargs)
            finally:
                self.active = False

        return wrapped
