"""Images in, network input out: decoding an upload and the views the networks see.

No torch: the CPU image serves from here.
"""
