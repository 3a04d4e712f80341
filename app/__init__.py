"""mrnet.app: the Gradio web demo, built on mrnet.infer only."""
