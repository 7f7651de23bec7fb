"""The fashion-resnet service. A request flows http -> protocol -> serving -> answer:
app.http receives it, app.protocol reads its wire format, app.serving decodes, batches and runs it.
"""
