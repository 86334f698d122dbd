"""python -m connector.powerplatform: regenerate the connector files checked in under openapi/."""
from .package import write

if __name__ == "__main__":
    for path in write():
        print(f"wrote {path}")
