def decode_boxes(
    getitem: int,
    decompress: int,
    jobs: object,
    cz: int,
    cy: int,
    cx: int,
    itemsize: int,
    trailer: int,
    out: int,
    zstride: int,
    ystride: int,
    /,
) -> int: ...
