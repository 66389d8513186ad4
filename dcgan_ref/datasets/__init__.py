"""Reading the datasets in the formats users download: CIFAR-10, SVHN, Tiny-ImageNet-200,
image folders and archives."""
