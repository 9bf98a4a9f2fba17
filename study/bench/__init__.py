"""Real benchmarks read from local files: POPE, AMBER and Object-HalBench-style CHAIR on COCO.

The organism's evaluation (:mod:`study.eval`) builds its items from exact scene graphs. These modules
read the published benchmark files instead, answer them with any LLaVA-family model and score them into
the same results layout (``predictions.jsonl`` + ``metrics.json`` with image-level bootstrap CIs;
``study/eval/LAYOUT.md``). Nothing is downloaded: every path is a local file named in params.
"""
