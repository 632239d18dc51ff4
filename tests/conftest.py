import hypothesis

# XLA compiles each new shape on first use: wall-clock deadlines would be noise.
hypothesis.settings.register_profile("jaxinit", deadline=None, max_examples=40,
                                     derandomize=True, print_blob=True)
hypothesis.settings.load_profile("jaxinit")
