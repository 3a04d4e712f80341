"""mrnet.app: the Gradio web demo, built on mrnet.infer only."""

import os

# Gradio reads this when it is first imported; every module of this package imports gradio after
# this line, so no usage data leaves the machine (Blocks also gets analytics_enabled=False).
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
