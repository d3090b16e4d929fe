"""The run folder, in one place: where it lies and what it is called (`location`), its
``status.json`` (`status`), and its other files.

The package imports nothing, so that the launch layer can ask where a run folder lies before
anything heavy is imported; import the submodules.
"""
