"""Plain torch models; each takes the dataset's input shape and number of classes."""

from fedsim.models.classic import CNN, MLP, LogisticRegression
from fedsim.models.building import ModelFactory, build_model, shared_model
from fedsim.models.kws import TCResNet
from fedsim.models.lenet import LeNet5
from fedsim.models.resnet import ResNet18
from fedsim.models.sequence import CNN1D, CharLSTM

__all__ = ["CNN", "CNN1D", "CharLSTM", "LeNet5", "MLP", "LogisticRegression", "ModelFactory", "ResNet18", "TCResNet", "build_model", "shared_model"]
