namespace NearML.Training.Tensors.Internal;

/// <summary>The kind of a recorded operation.</summary>
internal enum OpCode : byte
{
    Linear,
    MatMul,
    Add,
    Mul,
    Scale,
    Relu,
    Gelu,
    Tanh,
    Softmax,
    LogSoftmax,
    CrossEntropy,
    Sum,
    Transpose,
    Embedding,
    LayerNorm,
    Dropout,
    Conv2d,
    MaxPool2d,
    Attention,
}

/// <summary>One recorded operation: its inputs, output, saved buffers and integer/float attributes (no closures).</summary>
internal struct Node
{
    public OpCode Op;
    public Tensor? Out;
    public Tensor? A;
    public Tensor? B;
    public Tensor? C;
    public Tensor? S0;
    public Tensor? S1;
    public int[]? Ints;
    public int I0;
    public int I1;
    public int I2;
    public int I3;
    public int I4;
    public int I5;
    public int I6;
    public int I7;
    public float F0;
    public long L0;
}
