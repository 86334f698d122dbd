def main():  # replaced below
    pass
